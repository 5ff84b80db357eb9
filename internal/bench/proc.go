package bench

import (
	"os"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ, which /proc/<pid>/stat counts in; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procUsage reads a local process's CPU time and RSS from /proc.
func procUsage(pid int) usage {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return usage{}
	}
	// Fields after the command name (which may hold spaces) start at ")".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return usage{}
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return usage{}
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return usage{}
	}
	u := usage{cpu: (ut + st) / clockTicks}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return usage{}
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				u.rss, u.ok = kb*1024, true
			}
		}
	}
	return u
}
