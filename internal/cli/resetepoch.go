package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub/bolt"
)

func init() {
	register("reset-epoch", "give the durable history in --data-dir a new epoch (after restoring a backup)", runResetEpoch)
}

// runResetEpoch gives the log in --data-dir a new epoch, so that clients
// holding positions of the lost timeline reset instead of resuming past a
// gap. Herald must not be running on the directory.
func runResetEpoch(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "reset-epoch", "reset-epoch --data-dir DIR")
	dir := fs.String("data-dir", "", "directory of the durable history (as given to herald serve)")
	if err := parseErr(config.Parse(fs, args, env.Getenv)); err != nil {
		return err
	}
	if *dir == "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("reset-epoch: --data-dir is required")}
	}
	epoch, err := bolt.ResetEpoch(filepath.Join(*dir, bolt.FileName))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "new epoch %s: clients resuming with older event ids get herald.reset (epoch-changed)\n", epoch)
	return nil
}
