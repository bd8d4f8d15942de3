-- How each OAuth client's ID tokens are signed (OpenID Connect client metadata): RS256, the
-- algorithm every OpenID Connect client supports, unless the client chose ES256.
ALTER TABLE auth_clients ADD COLUMN IF NOT EXISTS id_token_signed_response_alg TEXT NOT NULL DEFAULT 'RS256';
