-- Rate budgets as PostgreSQL keeps them for many nodes (see tessera_core::budget): one row per
-- limit and key, holding when the budget is whole again (microseconds since the Unix epoch).
-- One SQLite server counts its limits in memory; the table keeps the two backends alike.
CREATE TABLE rate_budgets (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
);
CREATE INDEX rate_budgets_by_time ON rate_budgets (tat);
