// Package integration holds end-to-end tests of rstpool against the real
// PostgreSQL, MariaDB and Redis servers: every scenario runs with the stock
// client configuration and with rstpool's, side by side.
package integration
