package limit

import "net"

// NetConn returns the connection c wraps, as tls.Conn.NetConn does: code
// that needs the socket itself (the lean text/event-stream path writes to
// it without blocking) reaches it through this method. Close c, not the
// returned connection, so that the listener's count stays right.
func (c *conn) NetConn() net.Conn { return c.Conn }
