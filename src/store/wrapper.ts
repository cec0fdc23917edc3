/**
 * Store wrappers supplied from outside the library (fault injection in the
 * tests and the stress harness). A spec names the wrapper's module by URL
 * (`StoreSpecCommon.wrapper`), so every thread that opens the store imports
 * the module itself and wraps its store the same way, and the library never
 * imports the tooling.
 */
import { InternalError } from '../errors.js';
import type { TearHook } from './fs.js';
import type { WrapperSpec, StoreSpec } from './spec.js';
import type { ByteRange, IncompleteWrite, ObjectInfo, ObjectReader, ObjectWriter, PublishOptions, PutOptions, PutResult, StagedObject, Store, WriterOptions } from './store.js';

/** What the module a spec's `wrapper` names exports. */
export interface StoreWrapperModule {
  wrapStore(inner: Store, options: unknown, hooks: StoreHooks): Store;
}

/** What a wrapper may reach of the store it wraps, beyond the Store interface. */
export interface StoreHooks {
  /**
   * Directory stores only: decides which writes are torn. The store owns the
   * mechanics (see FsStore.tear); the wrapper only decides.
   */
  setTearHook?: (hook: TearHook | undefined) => void;
}

/**
 * A store behind a wrapper module that is imported on first use: opening
 * stays synchronous, and a thread that never uses the store never loads it.
 */
export class WrappedStore implements Store {
  readonly spec: StoreSpec;
  readonly location: string;
  private wrapped: Store | undefined;
  private loading: Promise<Store> | undefined;

  constructor(
    private readonly inner: Store,
    private readonly wrapper: WrapperSpec,
    private readonly hooks: StoreHooks,
  ) {
    this.spec = inner.spec;
    this.location = inner.location;
  }

  private async store(): Promise<Store> {
    if (this.wrapped !== undefined) return this.wrapped;
    this.loading ??= (import(this.wrapper.module) as Promise<StoreWrapperModule>).then(
      (m) => (this.wrapped = m.wrapStore(this.inner, this.wrapper.options, this.hooks)),
      (error: unknown) => {
        throw new InternalError('STORE_WRAPPER', `cannot load the store wrapper ${this.wrapper.module} (${error instanceof Error ? error.message : String(error)})`, { cause: error });
      },
    );
    return this.loading;
  }

  async put(key: string, parts: readonly Uint8Array[], options?: PutOptions): Promise<PutResult> {
    return (await this.store()).put(key, parts, options);
  }

  async createWriter(key: string, options?: WriterOptions): Promise<ObjectWriter> {
    return (await this.store()).createWriter(key, options);
  }

  async publish(staged: readonly StagedObject[], options?: PublishOptions): Promise<PutResult[]> {
    return (await this.store()).publish(staged, options);
  }

  async get(key: string, range?: ByteRange, into?: (length: number) => Buffer): Promise<Buffer> {
    return (await this.store()).get(key, range, into);
  }

  async openReader(key: string, range?: ByteRange): Promise<ObjectReader> {
    return (await this.store()).openReader(key, range);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    return (await this.store()).stat(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.store()).list(prefix);
  }

  async *listIncomplete(prefix: string): AsyncIterable<IncompleteWrite> {
    yield* (await this.store()).listIncomplete(prefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    return (await this.store()).delete(keys);
  }

  async syncNames(keys: readonly string[]): Promise<void> {
    return (await this.store()).syncNames(keys);
  }

  async exists(): Promise<boolean> {
    return (await this.store()).exists();
  }
}
