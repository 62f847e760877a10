package policy

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps rollout state and the event journal on disk, in a bbolt
// database under the state directory, so that a restarted weir resumes
// every rollout where it was.
type Store struct {
	db *bolt.DB
}

var (
	rolloutsBucket = []byte("rollouts")
	frozenBucket   = []byte("frozen")
	eventsBucket   = []byte("events")
	// overridesBucket holds set-weights overrides of fixed policies.
	overridesBucket = []byte("overrides")
)

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, "weir.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{rolloutsBucket, frozenBucket, eventsBucket, overridesBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init state store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Save deletes the services in gone, records the state of every rollout
// and frozen routing given, and journals events, in one transaction:
// state and journal never disagree. The overrides of fixed
// policies are replaced as a whole: there are few, and one that was cleared
// must go.
func (s *Store) Save(rollouts []Rollout, frozen map[string]Routing, overrides map[string]FixedOverride, gone []string, events []Event) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := appendEvents(tx, events); err != nil {
			return err
		}
		rb, fb := tx.Bucket(rolloutsBucket), tx.Bucket(frozenBucket)
		if err := tx.DeleteBucket(overridesBucket); err != nil {
			return err
		}
		ob, err := tx.CreateBucket(overridesBucket)
		if err != nil {
			return err
		}
		for svc, o := range overrides {
			if err := putJSON(ob, svc, o); err != nil {
				return err
			}
		}
		// gone first: a service may be gone as frozen and back as a new
		// rollout in one save.
		for _, svc := range gone {
			if err := rb.Delete([]byte(svc)); err != nil {
				return err
			}
			if err := fb.Delete([]byte(svc)); err != nil {
				return err
			}
		}
		for _, r := range rollouts {
			if err := putJSON(rb, r.Service, r); err != nil {
				return err
			}
		}
		for svc, rt := range frozen {
			if err := putJSON(fb, svc, rt); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load returns every stored rollout, frozen routing and override of a fixed
// policy.
func (s *Store) Load() (map[string]Rollout, map[string]Routing, map[string]FixedOverride, error) {
	rollouts, frozen, overrides := make(map[string]Rollout), make(map[string]Routing), make(map[string]FixedOverride)
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(rolloutsBucket).ForEach(func(k, v []byte) error {
			var r Rollout
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("rollout %s: %w", k, err)
			}
			rollouts[string(k)] = r
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(frozenBucket).ForEach(func(k, v []byte) error {
			var rt Routing
			if err := json.Unmarshal(v, &rt); err != nil {
				return fmt.Errorf("frozen routing %s: %w", k, err)
			}
			frozen[string(k)] = rt
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(overridesBucket).ForEach(func(k, v []byte) error {
			var o FixedOverride
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("override %s: %w", k, err)
			}
			overrides[string(k)] = o
			return nil
		})
	})
	return rollouts, frozen, overrides, err
}

func appendEvents(tx *bolt.Tx, events []Event) error {
	b := tx.Bucket(eventsBucket)
	for _, e := range events {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], seq)
		if err := putJSON(b, string(key[:]), e); err != nil {
			return err
		}
	}
	return nil
}

// Events returns the last n events of the journal, oldest first.
func (s *Store) Events(n int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(eventsBucket).Cursor()
		for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
