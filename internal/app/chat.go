package app

import (
	"context"
	"net/http"
)

// mountChat registers the chat endpoints (not built yet).
func (a *App) mountChat(ctx context.Context, mux *http.ServeMux) error {
	return nil
}
