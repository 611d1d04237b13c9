// Command tilesclient reads a log served as C2SP tlog-tiles with transparency-dev's client and checks it:
// the checkpoint's signature (golang.org/x/mod/sumdb/note, via transparency-dev/formats/log), the inclusion of
// some entries, and the consistency with an older checkpoint. Every check is made twice, with
// github.com/transparency-dev/tessera/client and with golang.org/x/mod/sumdb/tlog's tile hash reader (which
// authenticates each tile against the signed tree hash as it reads it). It prints one JSON verdict and exits 0
// if every check passed, 1 if one failed, 2 on bad usage.
//
//	tilesclient -url http://127.0.0.1:8080/ -vkey 'exchange-audit+1234abcd+AQ...' -origin exchange.local/access-log \
//	    -index 0,5,299 [-old-checkpoint FILE]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type check struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type included struct {
	Index uint64 `json:"index"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type consistency struct {
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type verdict struct {
	OK          bool         `json:"ok"`
	Origin      string       `json:"origin"`
	Size        uint64       `json:"size"`
	Root        []byte       `json:"root"`
	Signers     []string     `json:"signers"`
	Checkpoint  check        `json:"checkpoint"`
	RootOK      bool         `json:"root_from_tiles"`
	Inclusion   []included   `json:"inclusion"`
	Consistency *consistency `json:"consistency,omitempty"`
	Tlog        check        `json:"tlog"`
	Errors      []string     `json:"errors"`
}

func (v *verdict) fail(format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	v.Errors = append(v.Errors, msg)
	return msg
}

func main() {
	base := flag.String("url", "", "base URL of the log (its checkpoint is <url>/checkpoint)")
	vkey := flag.String("vkey", "", "the log's verifier key, <name>+<key id>+<base64 key>")
	origin := flag.String("origin", "", "the log's origin line")
	indices := flag.String("index", "0", "comma-separated entry indices to prove included")
	oldPath := flag.String("old-checkpoint", "", "a file holding an older signed checkpoint to prove consistency with")
	flag.Parse()
	if *base == "" || *vkey == "" || *origin == "" {
		fmt.Fprintln(os.Stderr, "tilesclient: -url, -vkey and -origin are required")
		os.Exit(2)
	}
	var want []uint64
	for _, s := range strings.Split(*indices, ",") {
		i, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tilesclient: bad index %q\n", s)
			os.Exit(2)
		}
		want = append(want, i)
	}
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tilesclient: bad verifier key: %v\n", err)
		os.Exit(2)
	}
	var oldRaw []byte
	if *oldPath != "" {
		if oldRaw, err = os.ReadFile(*oldPath); err != nil {
			fmt.Fprintf(os.Stderr, "tilesclient: %v\n", err)
			os.Exit(2)
		}
	}
	root, err := url.Parse(*base)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tilesclient: bad URL: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := run(ctx, root, verifier, *origin, want, oldRaw)
	v.OK = len(v.Errors) == 0
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Println(string(out))
	if !v.OK {
		os.Exit(1)
	}
}

func run(ctx context.Context, root *url.URL, verifier note.Verifier, origin string, want []uint64, oldRaw []byte) *verdict {
	v := &verdict{Origin: origin, Inclusion: []included{}, Signers: []string{}, Errors: []string{}}
	fetcher, err := client.NewHTTPFetcher(root, &http.Client{Timeout: 20 * time.Second})
	if err != nil {
		v.Checkpoint.Error = v.fail("fetcher: %v", err)
		return v
	}
	// The checkpoint: signed by the log's key (sumdb/note), for this origin (formats/log).
	raw, err := fetcher.ReadCheckpoint(ctx)
	if err != nil {
		v.Checkpoint.Error = v.fail("checkpoint: %v", err)
		return v
	}
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		v.Checkpoint.Error = v.fail("checkpoint signature: %v", err)
		return v
	}
	for _, s := range n.Sigs {
		v.Signers = append(v.Signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	cp, _, _, err := log.ParseCheckpoint(raw, origin, verifier)
	if err != nil {
		v.Checkpoint.Error = v.fail("checkpoint: %v", err)
		return v
	}
	v.Checkpoint.OK, v.Size, v.Root = true, cp.Size, cp.Hash

	// The root from the tiles' compact range, with tessera's client.
	if got, err := rangeRoot(ctx, fetcher, cp.Size); err != nil {
		v.fail("root from tiles: %v", err)
	} else if !bytes.Equal(got, cp.Hash) {
		v.fail("root from tiles: %x, the checkpoint says %x", got, cp.Hash)
	} else {
		v.RootOK = true
	}

	// Inclusion: each entry from its bundle, its proof from the tiles, checked against the signed root.
	builder, err := client.NewProofBuilder(ctx, cp.Size, fetcher.ReadTile)
	if err != nil {
		v.fail("proof builder: %v", err)
		return v
	}
	entries := map[uint64][]byte{}
	for _, i := range want {
		c := included{Index: i}
		entry, err := entryAt(ctx, fetcher, i, cp.Size)
		if err == nil {
			entries[i] = entry
			err = inclusion(ctx, fetcher, builder, cp, i, entry)
		}
		if err != nil {
			c.Error = v.fail("inclusion of %d: %v", i, err)
		} else {
			c.OK = true
		}
		v.Inclusion = append(v.Inclusion, c)
	}

	// Consistency with the older checkpoint: the proof from the tiles, and its root recomputed from the tiles.
	var old *log.Checkpoint
	if oldRaw != nil {
		v.Consistency = &consistency{To: cp.Size}
		old, _, _, err = log.ParseCheckpoint(oldRaw, origin, verifier)
		if err != nil {
			v.Consistency.Error = v.fail("old checkpoint: %v", err)
		} else {
			v.Consistency.From = old.Size
			if err := consistent(ctx, fetcher, builder, old, cp); err != nil {
				v.Consistency.Error = v.fail("consistency %d -> %d: %v", old.Size, cp.Size, err)
			} else {
				v.Consistency.OK = true
			}
		}
	}

	// The same proofs again with sumdb/tlog, which authenticates every tile it reads against the tree hash.
	if err := tlogChecks(fetcher, cp, entries, old); err != nil {
		v.Tlog.Error = v.fail("tlog: %v", err)
	} else {
		v.Tlog.OK = true
	}
	return v
}

func rangeRoot(ctx context.Context, f *client.HTTPFetcher, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	nodes, err := client.FetchRangeNodes(ctx, size, f.ReadTile)
	if err != nil {
		return nil, err
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, size, nodes)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// entryAt reads entry i from its entry bundle.
func entryAt(ctx context.Context, f *client.HTTPFetcher, i, size uint64) ([]byte, error) {
	if i >= size {
		return nil, fmt.Errorf("index %d is outside the tree of size %d", i, size)
	}
	n := i / layout.EntryBundleWidth
	bundle, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, n, size)
	if err != nil {
		return nil, err
	}
	want := uint64(layout.PartialTileSize(0, n, size))
	if want == 0 {
		want = layout.EntryBundleWidth
	}
	if uint64(len(bundle.Entries)) != want {
		return nil, fmt.Errorf("the entry bundle holds %d entries, not %d", len(bundle.Entries), want)
	}
	return bundle.Entries[i%layout.EntryBundleWidth], nil
}

func inclusion(ctx context.Context, f *client.HTTPFetcher, b *client.ProofBuilder, cp *log.Checkpoint, i uint64, entry []byte) error {
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	tiled, err := client.FetchLeafHashes(ctx, f.ReadTile, i, 1, cp.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(tiled[0], leaf) {
		return errors.New("the entry does not hash to its leaf hash in the level-0 tile")
	}
	p, err := b.InclusionProof(ctx, i)
	if err != nil {
		return err
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leaf, p, cp.Hash)
}

func consistent(ctx context.Context, f *client.HTTPFetcher, b *client.ProofBuilder, old, cp *log.Checkpoint) error {
	if old.Size > cp.Size {
		return fmt.Errorf("the older checkpoint is larger (%d) than the current one", old.Size)
	}
	p, err := b.ConsistencyProof(ctx, old.Size, cp.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
		return err
	}
	got, err := rangeRoot(ctx, f, old.Size)
	if err != nil {
		return fmt.Errorf("root of size %d from tiles: %v", old.Size, err)
	}
	if !bytes.Equal(got, old.Hash) {
		return fmt.Errorf("root of size %d from tiles is %x, the older checkpoint says %x", old.Size, got, old.Hash)
	}
	return nil
}

// tileReader serves sumdb/tlog's tile requests (height 8) from the tlog-tiles paths.
type tileReader struct{ f *client.HTTPFetcher }

func (tileReader) Height() int { return 8 }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != 8 || t.L < 0 {
			return nil, fmt.Errorf("unexpected tile %+v", t)
		}
		data, err := r.f.ReadTile(context.Background(), uint64(t.L), uint64(t.N), uint8(t.W%256))
		if err != nil {
			return nil, err
		}
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s has %d bytes", layout.TilePath(uint64(t.L), uint64(t.N), uint8(t.W%256)), len(data))
		}
		out[i] = data[:t.W*tlog.HashSize]
	}
	return out, nil
}

func (tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func tlogChecks(f *client.HTTPFetcher, cp *log.Checkpoint, entries map[uint64][]byte, old *log.Checkpoint) error {
	size := int64(cp.Size)
	var th tlog.Hash
	copy(th[:], cp.Hash)
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: th}, tileReader{f})
	if got, err := tlog.TreeHash(size, hr); err != nil {
		return err
	} else if got != th {
		return fmt.Errorf("tree hash %x, the checkpoint says %x", got[:], th[:])
	}
	for i, entry := range entries { // every entry read, whether or not tessera's proof verified
		p, err := tlog.ProveRecord(size, int64(i), hr)
		if err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
		if err := tlog.CheckRecord(p, size, th, int64(i), tlog.RecordHash(entry)); err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
	}
	if old != nil && old.Size > 0 && old.Size <= cp.Size {
		var oh tlog.Hash
		copy(oh[:], old.Hash)
		p, err := tlog.ProveTree(size, int64(old.Size), hr)
		if err != nil {
			return fmt.Errorf("tree %d -> %d: %v", old.Size, size, err)
		}
		if err := tlog.CheckTree(p, size, th, int64(old.Size), oh); err != nil {
			return fmt.Errorf("tree %d -> %d: %v", old.Size, size, err)
		}
	}
	return nil
}
