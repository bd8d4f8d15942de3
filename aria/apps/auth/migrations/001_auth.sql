-- aria_auth: identities, roles, groups, OAuth clients, tokens, MFA, federation and the audit log.
-- Portable to CockroachDB 22.1 and PostgreSQL 15 (no triggers, functions or SERIAL).

CREATE TABLE IF NOT EXISTS auth_principals (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    kind TEXT NOT NULL,
    name TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    disabled BOOL NOT NULL DEFAULT false,
    failed_logins INT NOT NULL DEFAULT 0,
    locked_until TIMESTAMPTZ,
    totp_secret TEXT,
    totp_confirmed BOOL NOT NULL DEFAULT false,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    attributes JSONB NOT NULL DEFAULT '{}',
    sessions_not_before TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_roles (
    name TEXT PRIMARY KEY,
    permissions JSONB NOT NULL DEFAULT '[]',
    require_mfa BOOL NOT NULL DEFAULT false,
    description TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_group_members (
    group_name TEXT NOT NULL REFERENCES auth_groups (name) ON DELETE CASCADE,
    principal_id UUID NOT NULL REFERENCES auth_principals (id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, principal_id)
);

-- A role is bound to a principal (subject_kind 'principal', subject = its id) or a group.
CREATE TABLE IF NOT EXISTS auth_role_bindings (
    role_name TEXT NOT NULL REFERENCES auth_roles (name) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (role_name, subject_kind, subject)
);

CREATE TABLE IF NOT EXISTS auth_clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT,
    name TEXT NOT NULL DEFAULT '',
    redirect_uris JSONB NOT NULL DEFAULT '[]',
    grant_types JSONB NOT NULL DEFAULT '[]',
    scope TEXT NOT NULL DEFAULT '',
    principal_id UUID REFERENCES auth_principals (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    principal_id UUID NOT NULL,
    redirect_uri TEXT NOT NULL DEFAULT '',
    scope TEXT NOT NULL DEFAULT '',
    nonce TEXT NOT NULL DEFAULT '',
    code_challenge TEXT NOT NULL DEFAULT '',
    code_challenge_method TEXT NOT NULL DEFAULT '',
    auth_time BIGINT NOT NULL,
    amr JSONB NOT NULL DEFAULT '[]',
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash TEXT NOT NULL UNIQUE,
    family_id UUID NOT NULL,
    principal_id UUID NOT NULL REFERENCES auth_principals (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL DEFAULT '',
    scope TEXT NOT NULL DEFAULT '',
    amr JSONB NOT NULL DEFAULT '[]',
    auth_time BIGINT NOT NULL,
    access_jti TEXT NOT NULL DEFAULT '',
    access_expires_at TIMESTAMPTZ,
    issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    revoked_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_family ON auth_refresh_tokens (family_id);

CREATE TABLE IF NOT EXISTS auth_revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS auth_revoked_tokens_revoked_at ON auth_revoked_tokens (revoked_at);

CREATE TABLE IF NOT EXISTS auth_api_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash TEXT NOT NULL UNIQUE,
    principal_id UUID NOT NULL REFERENCES auth_principals (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS auth_recovery_codes (
    principal_id UUID NOT NULL REFERENCES auth_principals (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMPTZ,
    PRIMARY KEY (principal_id, code_hash)
);

CREATE TABLE IF NOT EXISTS auth_federation_providers (
    name TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT 'openid profile',
    create_users BOOL NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth_federation_links (
    provider TEXT NOT NULL REFERENCES auth_federation_providers (name) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    principal_id UUID NOT NULL REFERENCES auth_principals (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, subject)
);

CREATE TABLE IF NOT EXISTS auth_federation_states (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_audit (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    principal TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    resource TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    details JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS auth_audit_at ON auth_audit (at);
CREATE INDEX IF NOT EXISTS auth_audit_principal ON auth_audit (principal, at);
