package instrument

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crs-ci/crs-ci/core/internal/testenv"
)

// BenchResult is what BenchmarkInstrument measured (written as JSON to $CRS_BENCH_OUT for
// scripts/bench-instrument.sh, which puts it in docs/benchmarks.md).
type BenchResult struct {
	Reps           int     `json:"reps"`
	ImageLayers    int     `json:"imageLayers"`
	ImageBytes     int64   `json:"imageBytes"`   // compressed size of the source's layers
	CheckMS        []int64 `json:"checkMs"`      // cold: --no-cache
	InstrumentMS   []int64 `json:"instrumentMs"` // cold: --no-cache
	WarmCheckMS    []int64 `json:"warmCheckMs"`  // with a warm facts cache
	WarmInstrMS    []int64 `json:"warmInstrumentMs"`
	CraneAppendMS  []int64 `json:"craneAppendMs"`
	Uploaded       []int64 `json:"uploadedBytes"`
	Budget         int64   `json:"budgetBytes"` // new layer + config + manifest
	LayerBytes     int64   `json:"layerBytes"`
	ConfigBytes    int64   `json:"configBytes"`
	ManifestBytes  int64   `json:"manifestBytes"`
	CraneUploaded  []int64 `json:"craneUploadedBytes"`
	MedianCheck    int64   `json:"medianCheckMs"`
	MedianInstr    int64   `json:"medianInstrumentMs"`
	MedianCrane    int64   `json:"medianCraneAppendMs"`
	MedianWarmChk  int64   `json:"medianWarmCheckMs"`
	MedianWarmIns  int64   `json:"medianWarmInstrumentMs"`
	TimeGoalMS     float64 `json:"timeGoalMs"` // check + 1.3 × crane append (cold)
	TimeGoalMet    bool    `json:"timeGoalMet"`
	WarmGoalMS     float64 `json:"warmGoalMs"` // the same with a warm facts cache
	WarmGoalMet    bool    `json:"warmGoalMet"`
	BytesGoalMet   bool    `json:"bytesGoalMet"`
	CrsCIVersion   string  `json:"crsCiVersion"`
	CraneVersion   string  `json:"craneVersion"`
	RootFilesystem string  `json:"rootFilesystems"`
}

// BenchmarkInstrument times `crs-ci instrument` (the real binary, cold: --no-cache) against `crs-ci check`
// and `crane append` of the very same probe layer to the same image in the same registry, and counts the
// bytes each uploads through the proxy. Each repetition writes to fresh repositories so every upload is
// real. Run it through scripts/bench-instrument.sh (make bench); -benchtime=Nx sets the repetitions.
// $CRS_BENCH_BIN and $CRS_BENCH_CRANE name the binaries (built/installed here when unset).
func BenchmarkInstrument(b *testing.B) {
	tmp := b.TempDir()
	bin := os.Getenv("CRS_BENCH_BIN")
	if bin == "" {
		bin = filepath.Join(tmp, "crs-ci")
		build := exec.Command("go", "build", "-o", bin, "../cmd/crs-ci")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("building crs-ci: %v\n%s", err, out)
		}
	}
	crane := os.Getenv("CRS_BENCH_CRANE")
	if crane == "" {
		install := exec.Command("go", "install", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
		install.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0")
		if out, err := install.CombinedOutput(); err != nil {
			b.Fatalf("installing crane: %v\n%s", err, out)
		}
		crane = filepath.Join(tmp, "crane")
	}

	reg := benchRegistry(b)
	proxy := testenv.StartFaultProxy(b, reg.Host)
	dockerCfg := filepath.Join(tmp, "docker")
	_ = os.MkdirAll(dockerCfg, 0o700)
	cfgJSON := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q},%q:{"username":%q,"password":%q}}}`,
		reg.Host, reg.User, reg.Password, proxy.Host, reg.User, reg.Password)
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(cfgJSON), 0o600); err != nil {
		b.Fatal(err)
	}
	rootfs := []string{"bookworm", "trixie"}
	var layers []v1.Layer
	for _, r := range rootfs {
		layers = append(layers, testenv.LayerFromDir(b, testenv.Rootfs(b, r)))
	}
	src := testenv.ImageFromLayers(b, v1.Config{Cmd: []string{"/bin/bash"}}, v1.Platform{OS: "linux", Architecture: "amd64"}, layers...)
	srcRef, _ := name.ParseReference(reg.Host+"/bench/app:1", name.Insecure)
	if err := remote.Write(srcRef, src, basicAuth(reg)); err != nil {
		b.Fatal(err)
	}
	res := BenchResult{ImageLayers: len(layers), BytesGoalMet: true}
	for _, l := range layers {
		s, _ := l.Size()
		res.ImageBytes += s
	}
	res.RootFilesystem = fmt.Sprint(rootfs)
	pol, _ := filepath.Abs(filepath.Join("testdata", "policy.yaml"))
	run := func(args ...string) time.Duration {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return d
	}
	image := proxy.Host + "/bench/app:1"
	layerFile := filepath.Join(tmp, "probe-layer.tar.gz")
	warm := filepath.Join(tmp, "warm-cache")
	run(bin, "check", image, "--cache-dir", warm, "--ci", "none", "--format", "json") // fills the warm cache

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// check and instrument alternate which goes first, so neither always meets a warmer page cache.
		check := func() {
			res.CheckMS = append(res.CheckMS, run(bin, "check", image, "--no-cache", "--ci", "none", "--format", "json").Milliseconds())
		}
		if i%2 == 0 {
			check()
		}
		proxy.Clear()
		target := fmt.Sprintf("%s/bench/out-%d-%d", proxy.Host, time.Now().UnixNano(), i)
		res.InstrumentMS = append(res.InstrumentMS, run(bin, "instrument", image, "--policy", pol, "--no-cache", "--ci", "none",
			"--format", "json", "--to", target+":layered").Milliseconds())
		res.Uploaded = append(res.Uploaded, proxy.Uploaded())
		if i%2 == 1 {
			check()
		}

		// The exact layer crs-ci added, and this repetition's budget: that layer + config + manifest.
		lref, _ := name.ParseReference(target+":layered", name.Insecure)
		img, err := remote.Image(lref, basicAuth(reg))
		if err != nil {
			b.Fatal(err)
		}
		ls, _ := img.Layers()
		last := ls[len(ls)-1]
		res.LayerBytes, _ = last.Size()
		rawCfg, _ := img.RawConfigFile()
		rawMf, _ := img.RawManifest()
		res.ConfigBytes, res.ManifestBytes = int64(len(rawCfg)), int64(len(rawMf))
		res.Budget = res.LayerBytes + res.ConfigBytes + res.ManifestBytes
		if u := res.Uploaded[len(res.Uploaded)-1]; float64(u) > 1.01*float64(res.Budget) {
			res.BytesGoalMet = false
			b.Errorf("repetition %d uploaded %d bytes, budget %d + 1%%", i, u, res.Budget)
		}
		if i == 0 {
			rc, err := last.Compressed()
			if err != nil {
				b.Fatal(err)
			}
			f, _ := os.Create(layerFile)
			_, err = io.Copy(f, rc)
			rc.Close()
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}

		res.WarmCheckMS = append(res.WarmCheckMS, run(bin, "check", image, "--cache-dir", warm, "--ci", "none", "--format", "json").Milliseconds())
		res.WarmInstrMS = append(res.WarmInstrMS, run(bin, "instrument", image, "--policy", pol, "--cache-dir", warm, "--ci", "none",
			"--format", "json", "--to", target+"-warm:layered").Milliseconds())

		proxy.Clear()
		ctarget := fmt.Sprintf("%s/bench/crane-%d-%d:appended", proxy.Host, time.Now().UnixNano(), i)
		res.CraneAppendMS = append(res.CraneAppendMS, run(crane, "append", "--insecure", "-b", image, "-f", layerFile, "-t", ctarget).Milliseconds())
		res.CraneUploaded = append(res.CraneUploaded, proxy.Uploaded())
	}
	b.StopTimer()

	res.Reps = b.N
	res.MedianCheck, res.MedianInstr, res.MedianCrane = median(res.CheckMS), median(res.InstrumentMS), median(res.CraneAppendMS)
	res.TimeGoalMS = float64(res.MedianCheck) + 1.3*float64(res.MedianCrane)
	res.TimeGoalMet = float64(res.MedianInstr) <= res.TimeGoalMS
	res.MedianWarmChk, res.MedianWarmIns = median(res.WarmCheckMS), median(res.WarmInstrMS)
	res.WarmGoalMS = float64(res.MedianWarmChk) + 1.3*float64(res.MedianCrane)
	res.WarmGoalMet = float64(res.MedianWarmIns) <= res.WarmGoalMS
	if v, err := exec.Command(bin, "version").Output(); err == nil {
		res.CrsCIVersion = string(v[:len(v)-1])
	}
	if v, err := exec.Command(crane, "version").Output(); err == nil {
		res.CraneVersion = string(v[:len(v)-1])
	}
	b.ReportMetric(float64(res.MedianInstr), "instrument-ms")
	b.ReportMetric(float64(res.MedianCheck), "check-ms")
	b.ReportMetric(float64(res.MedianCrane), "crane-append-ms")
	b.ReportMetric(float64(res.MedianWarmChk), "warm-check-ms")
	b.ReportMetric(float64(res.MedianWarmIns), "warm-instrument-ms")
	b.ReportMetric(float64(median(res.Uploaded)), "uploaded-B")
	b.ReportMetric(float64(res.Budget), "budget-B")
	if out := os.Getenv("CRS_BENCH_OUT"); out != "" {
		j, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(out, j, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchRegistry is the shared registry (benchmarks get testing.B, not testing.T).
func benchRegistry(b *testing.B) *testenv.Registry {
	b.Helper()
	regOnce.Do(func() {
		regShared, regErr = testenv.NewRegistry("crs", fmt.Sprintf("pw-%d", time.Now().UnixNano()))
	})
	if regErr != nil {
		b.Fatal(regErr)
	}
	return regShared
}
