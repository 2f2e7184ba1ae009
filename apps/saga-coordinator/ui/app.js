// The saga dashboard.
