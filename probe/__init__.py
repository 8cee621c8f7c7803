"""The probe sidecar (kubedns-probe): asks serve and cache over DNS, serves health checks and metrics."""
