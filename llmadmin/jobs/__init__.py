"""RQ job functions: take ids, load rows, call a service, record the outcome."""
