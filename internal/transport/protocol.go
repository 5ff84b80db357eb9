package transport

import "time"

// Defaults shared by every streaming face and transport.
const (
	// DefaultKeepAlive is the interval of keep-alives on an idle stream
	// (SSE comments; the WebSocket transport pings at its own interval).
	DefaultKeepAlive = 15 * time.Second
	// DefaultWriteTimeout bounds each write: a client that cannot take one
	// in time is cut off as a slow consumer.
	DefaultWriteTimeout = 10 * time.Second
)

// The notice a stream ends with when the subscriber's credentials expire:
// an SSE event of this type, or a WebSocket "event" frame of this type
// followed by close code 4401.
const (
	AuthExpiredEventType = "herald.auth-expired"
	AuthExpiredData      = `{"reason":"token expired"}`
)

// clockBase makes clock monotonic.
var clockBase = time.Now()

// clock returns monotonic nanoseconds.
func clock() int64 { return int64(time.Since(clockBase)) }

// clockAt returns t on clock's scale.
func clockAt(t time.Time) int64 { return int64(t.Sub(clockBase)) }
