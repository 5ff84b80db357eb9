package bolt_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"go.etcd.io/bbolt"
)

// makeOld rewrites the file at path (closed) as a herald before topics
// counted their bytes wrote it: topic entries of two fields, no fair
// bucket content, no "fair" mark.
func makeOld(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Delete([]byte("fair")); err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte("fair")); err != nil {
			return err
		}
		if _, err := tx.CreateBucket([]byte("fair")); err != nil {
			return err
		}
		topics := tx.Bucket([]byte("topics"))
		var keys, vals [][]byte
		err := topics.ForEach(func(k, v []byte) error {
			count, n := binary.Uvarint(v)
			evicted, _ := binary.Uvarint(v[n:])
			keys = append(keys, bytes.Clone(k))
			vals = append(vals, binary.AppendUvarint(binary.AppendUvarint(nil, count), evicted))
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := topics.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
