package transport

import "context"

type contextT = context.Context

func contextCause(c *Conn) error { return context.Cause(c.Context()) }
