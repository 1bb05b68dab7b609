package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressMinBytes is the log size from which verify shows a progress bar;
// a smaller log is read before anyone would look at one.
var progressMinBytes int64 = 256 << 20

// isTerminal reports whether w is a terminal. Tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && terminalFd(int(f.Fd()))
}

// progressBar draws "label [=====>    ] 42% 1.1 GiB / 2.6 GiB" on one line of
// a terminal, redrawn at most every 100ms. A nil *progressBar draws
// nothing, so callers need not check.
type progressBar struct {
	w     io.Writer
	label string
	last  time.Time
	drawn bool
}

// newProgressBar returns a bar on w, or nil when w is not a terminal.
func newProgressBar(w io.Writer, label string) *progressBar {
	if !isTerminal(w) {
		return nil
	}
	return &progressBar{w: w, label: label}
}

// update is an inspect.Options.Progress callback.
func (p *progressBar) update(done, total int64) {
	if p == nil || total < progressMinBytes || total <= 0 {
		return
	}
	now := time.Now()
	if p.drawn && now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	const width = 30
	n := int(int64(width) * done / total)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3d%% %s / %s", p.label, bar, 100*done/total, size(done), size(total))
	p.drawn = true
}

// finish clears the bar's line.
func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
