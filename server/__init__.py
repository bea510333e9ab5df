"""The serving half of bet: one inference core behind a gRPC server and a REST facade."""
