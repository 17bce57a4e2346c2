// vmistatus reads VirtualMachineInstance statuses as the API server stored them, one JSON
// object per line, and writes each back as KubeVirt's Go type encodes it after decoding it:
// what virt-controller holds when its status patches test the fields they change
// (/status/conditions, /status/volumeStatus, ...). A field the simulated node writes
// differently from Go (one Go always writes, like a condition's lastProbeTime) fails every
// such patch; the integration tests compare the two (tests/integration/scenario.py).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	v1 "kubevirt.io/api/core/v1"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		var status v1.VirtualMachineInstanceStatus
		again := []byte(nil)
		err := json.Unmarshal(in.Bytes(), &status)
		if err == nil {
			again, err = json.Marshal(status)
		}
		if err != nil {
			again, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		fmt.Fprintf(out, "%s\n", again)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
