// The subset of the `rocksdb-native` npm package (bindings to RocksDB, prebuilt
// N-API addons for every Node version) that the state generators use; the
// package ships no typings.
declare module 'rocksdb-native' {
  export interface OpenOptions {
    /** Memtable size: each flush writes an SST of about this size (default 64 MiB). */
    writeBufferSize?: number;
    /** Data block size in SSTs (default 8 KiB). */
    tableBlockSize?: number;
  }
  export interface BatchOptions {
    /** Free the batch once its flush settles (a database does not close while a batch is alive). */
    autoDestroy?: boolean;
    capacity?: number;
  }
  export interface WriteBatch {
    tryPut(key: string | Buffer, value: string | Buffer): void;
    tryDelete(key: string | Buffer): void;
    /** Applies the batch atomically. */
    flush(): Promise<void>;
    destroy(): void;
  }
  class RocksDB {
    constructor(path: string, options?: OpenOptions);
    ready(): Promise<void>;
    write(options?: BatchOptions): WriteBatch;
    /** Flushes the memtable into an SST. */
    flush(): Promise<void>;
    /** Compacts the SSTs overlapping [start, end] (RocksDB's CompactRange). */
    compactRange(start: string | Buffer, end: string | Buffer): Promise<void>;
    close(): Promise<void>;
  }
  export default RocksDB;
}
