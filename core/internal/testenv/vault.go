package testenv

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Vault is an in-process HTTP server that follows HashiCorp Vault's documented HTTP API for the parts crs-ci
// uses: KV v1 reads (GET /v1/MOUNT/PATH), KV v2 reads (GET /v1/MOUNT/data/PATH, with the data/metadata
// envelope), AppRole login (POST /v1/auth/MOUNT/login with role_id/secret_id), JWT login (POST
// /v1/auth/MOUNT/login with role/jwt, RS256-signed tokens checked against the configured key, audience and
// expiry), the X-Vault-Token header, and Vault's JSON envelopes and error bodies ({"errors":[...]}). No real
// Vault server can be installed on the machines this project is tested on; this is the faithful stand-in.
type Vault struct {
	URL string

	mu       sync.Mutex
	kv1      map[string]map[string]map[string]any // mount → path → data
	kv2      map[string]map[string]*kv2Secret     // mount → path → versions
	tokens   map[string][]string                  // token → readable path prefixes ("" = all)
	approles map[string]appRole                   // mount/role_id → role
	jwtRoles map[string]jwtRole                   // mount/role → role
	jwtKey   *rsa.PrivateKey
	requests []string
	counter  int
}

type kv2Secret struct {
	data    map[string]any
	created time.Time
	version int
	deleted bool
}

type appRole struct {
	name, secretID string
	paths          []string
}

type jwtRole struct {
	audience, subject string
	paths             []string
}

// StartVault starts the server for the test; it stops when the test ends.
func StartVault(t testing.TB) *Vault {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("vault: generating the JWT signing key: %v", err)
	}
	v := &Vault{
		kv1: map[string]map[string]map[string]any{}, kv2: map[string]map[string]*kv2Secret{},
		tokens: map[string][]string{}, approles: map[string]appRole{}, jwtRoles: map[string]jwtRole{}, jwtKey: key,
	}
	srv := httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(srv.Close)
	v.URL = srv.URL
	return v
}

// PutKV1 stores data at MOUNT/PATH of a KV version 1 engine.
func (v *Vault) PutKV1(mount, path string, data map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.kv1[mount] == nil {
		v.kv1[mount] = map[string]map[string]any{}
	}
	v.kv1[mount][path] = data
}

// PutKV2 writes a new version of MOUNT/PATH in a KV version 2 engine.
func (v *Vault) PutKV2(mount, path string, data map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.kv2[mount] == nil {
		v.kv2[mount] = map[string]*kv2Secret{}
	}
	ver := 1
	if old := v.kv2[mount][path]; old != nil {
		ver = old.version + 1
	}
	v.kv2[mount][path] = &kv2Secret{data: data, created: time.Now().UTC(), version: ver}
}

// DeleteKV2 soft-deletes the latest version of MOUNT/PATH (reads then answer 404 with the metadata).
func (v *Vault) DeleteKV2(mount, path string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.kv2[mount][path]; s != nil {
		s.deleted = true
	}
}

// AddToken makes token valid for reading paths under the given prefixes (no prefix: everything).
func (v *Vault) AddToken(token string, prefixes ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens[token] = prefixes
}

// AddAppRole registers an AppRole at auth/MOUNT whose tokens may read under the prefixes.
func (v *Vault) AddAppRole(mount, name, roleID, secretID string, prefixes ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.approles[mount+"/"+roleID] = appRole{name: name, secretID: secretID, paths: prefixes}
}

// AddJWTRole registers a role at auth/MOUNT accepting tokens signed by the server's key with the audience
// (and subject, when not empty); its tokens may read under the prefixes.
func (v *Vault) AddJWTRole(mount, role, audience, subject string, prefixes ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.jwtRoles[mount+"/"+role] = jwtRole{audience: audience, subject: subject, paths: prefixes}
}

// SignJWT returns an RS256 JWT with the claims, signed by the key the JWT roles trust (an OIDC provider's job).
func (v *Vault) SignJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, v.jwtKey, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return in + "." + b64(sig)
}

// Requests lists "METHOD /path" of every request served so far.
func (v *Vault) Requests() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.requests...)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (v *Vault) serve(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests = append(v.requests, r.Method+" "+r.URL.Path)
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		vaultError(w, http.StatusNotFound)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	if strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		v.login(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "auth/"), "/login"))
		return
	}
	if r.Method != http.MethodGet {
		vaultError(w, http.StatusMethodNotAllowed, "unsupported operation")
		return
	}
	prefixes, ok := v.tokens[r.Header.Get("X-Vault-Token")]
	if !ok || !allowed(prefixes, p) {
		vaultError(w, http.StatusForbidden, "permission denied")
		return
	}
	mount, rest := v.mountOf(p)
	if m, ok := v.kv1[mount]; ok {
		data, ok := m[rest]
		if !ok {
			vaultError(w, http.StatusNotFound)
			return
		}
		v.respond(w, http.StatusOK, map[string]any{"data": data, "lease_duration": 2764800, "mount_type": "kv"})
		return
	}
	if m, ok := v.kv2[mount]; ok {
		path, isData := strings.CutPrefix(rest, "data/")
		if !isData {
			v.respond(w, http.StatusNotFound, map[string]any{"warnings": []string{
				"Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."}})
			return
		}
		s, ok := m[path]
		if !ok {
			vaultError(w, http.StatusNotFound)
			return
		}
		meta := map[string]any{"created_time": s.created.Format(time.RFC3339Nano), "custom_metadata": nil,
			"deletion_time": "", "destroyed": false, "version": s.version}
		if s.deleted {
			meta["deletion_time"] = s.created.Add(time.Second).Format(time.RFC3339Nano)
			v.respond(w, http.StatusNotFound, map[string]any{"data": map[string]any{"data": nil, "metadata": meta}, "mount_type": "kv"})
			return
		}
		v.respond(w, http.StatusOK, map[string]any{"data": map[string]any{"data": s.data, "metadata": meta}, "mount_type": "kv"})
		return
	}
	vaultError(w, http.StatusForbidden, "permission denied") // no such mount: Vault answers as for any unauthorised path
}

// mountOf splits p into the longest registered mount and the rest, as Vault's router does.
func (v *Vault) mountOf(p string) (string, string) {
	best := ""
	for _, m := range v.mounts() {
		if strings.HasPrefix(p, m+"/") && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		m, rest, _ := strings.Cut(p, "/")
		return m, rest
	}
	return best, strings.TrimPrefix(p, best+"/")
}

func (v *Vault) mounts() []string {
	var out []string
	for m := range v.kv1 {
		out = append(out, m)
	}
	for m := range v.kv2 {
		out = append(out, m)
	}
	return out
}

func allowed(prefixes []string, p string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

func (v *Vault) login(w http.ResponseWriter, r *http.Request, mount string) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		vaultError(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	str := func(k string) string { s, _ := body[k].(string); return s }
	if _, isJWT := body["jwt"]; isJWT || body["role"] != nil {
		role := str("role")
		if role == "" {
			vaultError(w, http.StatusBadRequest, "missing role")
			return
		}
		jr, ok := v.jwtRoles[mount+"/"+role]
		if !ok {
			vaultError(w, http.StatusBadRequest, fmt.Sprintf("role %q could not be found", role))
			return
		}
		claims, err := v.verifyJWT(str("jwt"))
		if err != nil {
			vaultError(w, http.StatusBadRequest, "error validating token: "+err.Error())
			return
		}
		if !audienceMatches(claims["aud"], jr.audience) {
			vaultError(w, http.StatusBadRequest, "error validating claims: invalid audience (aud) claim: audience provided does not match any expected audience")
			return
		}
		if jr.subject != "" && claims["sub"] != jr.subject {
			vaultError(w, http.StatusBadRequest, "error validating claims: claim \"sub\" does not match any associated bound claim values")
			return
		}
		v.issue(w, jr.paths, map[string]any{"role": role})
		return
	}
	roleID := str("role_id")
	if roleID == "" {
		vaultError(w, http.StatusBadRequest, "missing role_id")
		return
	}
	ar, ok := v.approles[mount+"/"+roleID]
	if !ok || ar.secretID != str("secret_id") {
		vaultError(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	v.issue(w, ar.paths, map[string]any{"role_name": ar.name})
}

func (v *Vault) issue(w http.ResponseWriter, paths []string, metadata map[string]any) {
	v.counter++
	sum := sha256.Sum256([]byte(fmt.Sprintf("token-%d-%d", v.counter, time.Now().UnixNano())))
	tok := "hvs." + hex.EncodeToString(sum[:12])
	v.tokens[tok] = paths
	v.respond(w, http.StatusOK, map[string]any{"auth": map[string]any{
		"client_token": tok, "accessor": hex.EncodeToString(sum[12:24]), "policies": []string{"default", "crs-ci"},
		"token_policies": []string{"default", "crs-ci"}, "metadata": metadata, "lease_duration": 2764800,
		"renewable": true, "entity_id": hex.EncodeToString(sum[24:]), "token_type": "service", "orphan": true,
		"mfa_requirement": nil, "num_uses": 0,
	}})
}

func (v *Vault) verifyJWT(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("go-jose/go-jose: compact JWS format must have three parts")
	}
	var hdr map[string]any
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, fmt.Errorf("malformed token header")
	}
	if hdr["alg"] != "RS256" {
		return nil, fmt.Errorf("unsupported signing algorithm %v", hdr["alg"])
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("malformed signature")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&v.jwtKey.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, fmt.Errorf("failed to verify id token signature")
	}
	var claims map[string]any
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(cb, &claims) != nil {
		return nil, fmt.Errorf("malformed claims")
	}
	if exp, ok := claims["exp"].(float64); !ok || time.Unix(int64(exp), 0).Before(time.Now()) {
		return nil, fmt.Errorf("token is expired (exp)")
	}
	return claims, nil
}

func audienceMatches(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if x == want {
				return true
			}
		}
	}
	return false
}

// respond writes Vault's response envelope around the fields given.
func (v *Vault) respond(w http.ResponseWriter, code int, fields map[string]any) {
	v.counter++
	env := map[string]any{
		"request_id": fmt.Sprintf("00000000-0000-4000-8000-%012d", v.counter), "lease_id": "", "renewable": false,
		"lease_duration": 0, "data": nil, "wrap_info": nil, "warnings": nil, "auth": nil, "mount_type": "",
	}
	for k, val := range fields {
		env[k] = val
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(env)
}

// vaultError writes Vault's error body: {"errors":[...]} (an empty list for a plain 404).
func vaultError(w http.ResponseWriter, code int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}
