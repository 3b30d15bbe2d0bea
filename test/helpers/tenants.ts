/** The keys the multi-tenant tests run with: an admin, two tenants, a share-token secret. */
export const ADMIN = "admin-key-0001";
export const ALICE = "alice-key-0001";
export const BOB = "bob-key-00001";
export const SECRET = "share-secret-0123456789abcdef-0123456789";

/** The headers of a request made with `key`. */
export const as = (key: string) => ({ authorization: `Bearer ${key}` });
