-- The simulated gateway's settings in force, one row shared by every instance of the service:
-- each batch of charges reads it in its own transaction, so a change made at run time
-- (PUT /admin/simulation) applies from the next charge on, everywhere.
CREATE TABLE simulation (
    id                BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    success_rate      DOUBLE PRECISION NOT NULL CHECK (success_rate >= 0 AND success_rate <= 1),
    -- the u64 seed's 64 bits
    seed              BIGINT NOT NULL,
    latency_ms        BIGINT NOT NULL CHECK (latency_ms >= 0),
    -- the environment's values when they were last applied: a restart with other values in the
    -- environment (a changed deployment) applies them, a restart with the same ones does not
    env_success_rate  DOUBLE PRECISION NOT NULL,
    env_seed          BIGINT NOT NULL,
    env_latency_ms    BIGINT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- 'environment', or the fingerprint of the admin token that changed them
    updated_by        TEXT NOT NULL
);
