// The subset of the `rocksdb` npm package (a leveldown-style binding) that the
// state generator uses; the community typings lack its RocksDB open options.
declare module 'rocksdb' {
  type Callback = (err: Error | undefined) => void;
  interface OpenOptions {
    createIfMissing?: boolean;
    errorIfExists?: boolean;
    compression?: boolean;
    writeBufferSize?: number;
    maxFileSize?: number;
    blockSize?: number;
    cacheSize?: number;
  }
  interface BatchOp {
    type: 'put' | 'del';
    key: string | Buffer;
    value?: string | Buffer;
  }
  interface RocksDB {
    open(options: OpenOptions, cb: Callback): void;
    close(cb: Callback): void;
    batch(ops: BatchOp[], cb: Callback): void;
    compactRange(start: string | Buffer, end: string | Buffer, cb: Callback): void;
  }
  function rocksdb(location: string): RocksDB;
  export default rocksdb;
}
