// The user store interface: what the server and the admin commands need, with no SQL in sight.

export interface UserRecord {
  name: string;
  /** argon2id PHC string. */
  passwordHash: string;
  /** Absolute home directory. */
  home: string;
  /** Quota in bytes; null for unlimited. */
  quotaBytes: number | null;
  /** Bytes in use as last persisted; null when never counted. */
  usedBytes: number | null;
  /** True while uploads may have changed the home since usedBytes was written (a crash then forces a rescan). */
  usageDirty: boolean;
}

export interface NewUser {
  name: string;
  passwordHash: string;
  home: string;
  quotaBytes: number | null;
}

export interface UserStore {
  get(name: string): Promise<UserRecord | undefined>;
  list(): Promise<UserRecord[]>;
  count(): Promise<number>;
  /** Adds a user; throws UserExistsError when the name is taken. */
  add(user: NewUser): Promise<void>;
  /** Removes a user; returns false when there was none. */
  remove(name: string): Promise<boolean>;
  update(name: string, changes: Partial<Pick<UserRecord, "passwordHash" | "home" | "quotaBytes">>): Promise<boolean>;
  /**
   * Stores a user's usage figure. With `wait: false` a store that another process holds locked fails at once instead
   * of waiting for it (the server's sessions must not stall behind an admin's or another program's transaction; the
   * caller tries again later).
   */
  setUsage(name: string, usedBytes: number | null, dirty: boolean, opts?: { wait?: boolean }): Promise<void>;
  /**
   * Whether someone else (the `myftpd user` commands, another process) changed the store since the last call; cheap
   * enough to ask every second. Stores that cannot tell leave it out.
   */
  changedElsewhere?(): boolean;
  close(): void;
}

export class UserExistsError extends Error {
  constructor(name: string) {
    super(`user ${name} already exists`);
    this.name = "UserExistsError";
  }
}

/** User names: letters, digits, ".", "_", "-"; 1 to 64 characters; not starting with "." or "-". */
export const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

export function isValidUserName(name: string): boolean {
  return USER_NAME.test(name);
}
