// opa-runner evaluates the crmrisk Rego library with OPA on many input documents, for
// bench/engine-vs-opa.sh: the query is prepared once, every input is converted to an AST value
// before the clock starts, and only the evaluations are timed (wall and CPU: user+sys of the
// process, GC threads included).
//
//	opa-runner -policies DIR -inputs inputs.jsonl -out findings.jsonl [-warmup N]
//
// It loads every .rego file under DIR except *_test.rego, and DIR/metadata.json as data. The
// findings file has one line per input: {"index": i, "workload": "Kind/ns/name",
// "findings": [[id, message], ...]} sorted, the format of `bench_inputs eval`. A JSON summary is
// printed on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// The union of the four areas' findings: what crmrisk's entry rule returns, flattened.
const query = "x := ((data.crmrisk.encryption.findings | data.crmrisk.backups.findings) | data.crmrisk.rbac.findings) | data.crmrisk.disaster_recovery.findings"

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "opa-runner: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	policies := flag.String("policies", "policies", "directory of the Rego library")
	inputsPath := flag.String("inputs", "", "input documents, one JSON per line")
	outPath := flag.String("out", "", "findings file to write")
	warmup := flag.Int("warmup", 200, "inputs evaluated once before timing")
	flag.Parse()
	if *inputsPath == "" || *outPath == "" {
		fail("-inputs and -out are required")
	}

	options := []func(*rego.Rego){rego.Query(query)}
	modules := 0
	err := filepath.WalkDir(*policies, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		options = append(options, rego.Module(path, string(src)))
		modules++
		return nil
	})
	if err != nil {
		fail("reading %s: %v", *policies, err)
	}
	metadata, err := os.ReadFile(filepath.Join(*policies, "metadata.json"))
	if err != nil {
		fail("%v", err)
	}
	var data map[string]any
	if err := util.UnmarshalJSON(metadata, &data); err != nil {
		fail("metadata.json: %v", err)
	}
	options = append(options, rego.Store(inmem.NewFromObject(data)))

	ctx := context.Background()
	prepared, err := rego.New(options...).PrepareForEval(ctx)
	if err != nil {
		fail("preparing the query: %v", err)
	}

	file, err := os.Open(*inputsPath)
	if err != nil {
		fail("%v", err)
	}
	var inputs []ast.Value
	var workloads []string
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		var doc any
		if err := util.UnmarshalJSON(scanner.Bytes(), &doc); err != nil {
			fail("input %d: %v", len(inputs), err)
		}
		w, _ := doc.(map[string]any)["workload"].(map[string]any)
		workloads = append(workloads, fmt.Sprintf("%v/%v/%v", w["kind"], w["namespace"], w["name"]))
		v, err := ast.InterfaceToValue(doc)
		if err != nil {
			fail("input %d: %v", len(inputs), err)
		}
		inputs = append(inputs, v)
	}
	if err := scanner.Err(); err != nil {
		fail("%v", err)
	}
	file.Close()

	for i := 0; i < *warmup && i < len(inputs); i++ {
		if _, err := prepared.Eval(ctx, rego.EvalParsedInput(inputs[i])); err != nil {
			fail("input %d: %v", i, err)
		}
	}
	results := make([]rego.ResultSet, len(inputs))
	cpu0, t0 := cpuSeconds(), time.Now()
	for i, input := range inputs {
		rs, err := prepared.Eval(ctx, rego.EvalParsedInput(input))
		if err != nil {
			fail("input %d (%s): %v", i, workloads[i], err)
		}
		results[i] = rs
	}
	wall, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0

	out, err := os.Create(*outPath)
	if err != nil {
		fail("%v", err)
	}
	w := bufio.NewWriter(out)
	total := 0
	for i, rs := range results {
		if len(rs) != 1 {
			fail("input %d (%s): %d results, expected 1", i, workloads[i], len(rs))
		}
		items, ok := rs[0].Bindings["x"].([]any)
		if !ok {
			fail("input %d (%s): findings are %T, not a set", i, workloads[i], rs[0].Bindings["x"])
		}
		findings := make([][2]string, 0, len(items))
		for _, item := range items {
			f, _ := item.(map[string]any)
			id, _ := f["id"].(string)
			message, _ := f["message"].(string)
			findings = append(findings, [2]string{id, message})
		}
		sort.Slice(findings, func(a, b int) bool {
			if findings[a][0] != findings[b][0] {
				return findings[a][0] < findings[b][0]
			}
			return findings[a][1] < findings[b][1]
		})
		total += len(findings)
		line, _ := json.Marshal(map[string]any{"index": i, "workload": workloads[i], "findings": findings})
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		fail("%v", err)
	}
	out.Close()

	n := float64(len(inputs))
	summary, _ := json.Marshal(map[string]any{
		"engine": "opa", "measured": "rego evaluation", "count": len(inputs), "findings": total,
		"modules": modules, "wall_seconds": wall, "cpu_seconds": cpu,
		"evals_per_second": n / wall, "evals_per_cpu_second": n / cpu,
	})
	fmt.Println(string(summary))
}
