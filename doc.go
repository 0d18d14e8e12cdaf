// Package rstpool ends "connection reset by peer" on the client side of a service.
package rstpool
