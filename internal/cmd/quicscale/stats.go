package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// usage is one reading of a process's memory and goroutines. A field that
// could not be read is -1.
type usage struct {
	rss        int64 // VmRSS, bytes
	heap       int64 // Go heap in use (not after a forced GC), bytes
	stack      int64 // goroutine stacks in use, bytes
	goroutines int64
	cpu        time.Duration // user + system CPU time so far; -1: unknown
	at         time.Time     // when it was read
}

func unknownUsage() usage {
	return usage{rss: -1, heap: -1, stack: -1, goroutines: -1, cpu: -1, at: time.Now()}
}

// cpuShare returns the CPU the process used between readings a and b as a
// percentage of one core, or -1 when either is unknown.
func cpuShare(a, b usage) float64 {
	if a.cpu < 0 || b.cpu < 0 || !b.at.After(a.at) {
		return -1
	}
	return 100 * float64(b.cpu-a.cpu) / float64(b.at.Sub(a.at))
}

// serverUsage reads the server's VmRSS from /proc/pid/status (pid > 0) and
// its heap, stacks and goroutines from its Prometheus endpoint (url not
// empty). Without pid the RSS comes from the endpoint too.
func serverUsage(ctx context.Context, pid int, url string) (usage, error) {
	u := unknownUsage()
	if url != "" {
		m, err := scrape(ctx, url)
		if err != nil {
			return u, err
		}
		u.heap = metric(m, "go_memstats_heap_inuse_bytes")
		u.stack = metric(m, "go_memstats_stack_inuse_bytes")
		u.goroutines = metric(m, "go_goroutines")
		u.rss = metric(m, "process_resident_memory_bytes")
	}
	if pid > 0 {
		rss, err := vmRSS(pid)
		if err != nil {
			return u, err
		}
		u.rss = rss
		u.cpu = processCPU(pid)
	}
	return u, nil
}

// selfUsage reads this process's own usage.
func selfUsage() usage {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: int64(runtime.NumGoroutine())}
	rss, err := vmRSS(os.Getpid())
	if err != nil {
		rss = -1
	}
	u.rss = rss
	return u
}

// vmRSS returns the VmRSS of process pid in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %w", pid, rest, err)
		}
		return kib * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line", pid)
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// processCPU returns the user and system CPU time process pid has used, or
// -1 when pid is 0 or it cannot be read.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted from 3 (state) start after its closing one.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * clockTick
}

// selfCPU returns the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scrapeLimit bounds the size of a metrics page read.
const scrapeLimit = 8 << 20

// scrape fetches a Prometheus text page and returns its samples without
// labels, by name.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	m := make(map[string]float64)
	sc := bufio.NewScanner(io.LimitReader(resp.Body, scrapeLimit))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// metric returns sample name of m, or -1 when it is missing.
func metric(m map[string]float64, name string) int64 {
	v, ok := m[name]
	if !ok {
		return -1
	}
	return int64(v)
}

// perSession returns (after - before) / n in KiB, or -1 when either
// reading is unknown.
func perSessionKiB(before, after int64, n int) float64 {
	if before < 0 || after < 0 {
		return -1
	}
	return float64(after-before) / float64(n) / 1024
}

// perSessionCount returns (after - before) / n, or -1 when either reading
// is unknown.
func perSessionCount(before, after int64, n int) float64 {
	if before < 0 || after < 0 {
		return -1
	}
	return float64(after-before) / float64(n)
}

// mib formats bytes in MiB, or "unknown".
func mib(b int64) string {
	if b < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
