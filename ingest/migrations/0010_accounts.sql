-- 0010_accounts: revocable tokens and login throttling (api/auth.py, api/throttle.py,
-- docs/security.md).
--
-- Written with IF NOT EXISTS so that applying it to a schema that already has these objects
-- (under another migration number) changes nothing.

-- Every access token carries the user's token_version (claim `ver`); a token whose version is
-- not the user's current one, or a disabled user's token, is refused. Disabling a user and
-- "revoke my tokens" bump it, so every token issued before is refused from then on.
ALTER TABLE users ADD COLUMN IF NOT EXISTS token_version integer NOT NULL DEFAULT 0;

-- Sign-in attempts per account name and per client address, shared by every API process.
-- A row counts the attempts of its current window; when `attempts` reaches the scope's limit,
-- `locked_until` is set and attempts before then are answered 429 without checking a password.
CREATE TABLE IF NOT EXISTS login_throttle (
    scope        text        NOT NULL CHECK (scope IN ('account', 'address')),
    key          text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    PRIMARY KEY (scope, key)
);
