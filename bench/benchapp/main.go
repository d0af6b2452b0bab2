// Command benchapp gives bench/peerbench.sh what the jwt and whoami session
// bindings need besides peerbench's upstream: a signed app session for the
// load tool's Cookie header, and the app's "who am I" answer.
//
//	benchapp -jwt DIR -user bench:staff     writes DIR/app.pub, prints a JWT for the user (1 day)
//	benchapp -whoami ADDR -user bench:staff answers GET /whoami with {"user": ...} to any bo_session cookie
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/jose"
)

func main() {
	jwtDir := flag.String("jwt", "", "write the app's public key here and print a JWT")
	whoami := flag.String("whoami", "", "serve /whoami on this address")
	user := flag.String("user", "bench:staff", "the app user (store:name)")
	flag.Parse()
	switch {
	case *jwtDir != "":
		tok, err := signedSession(*jwtDir, *user)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(tok)
	case *whoami != "":
		http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
			if _, err := r.Cookie("bo_session"); err != nil {
				http.Error(w, "no session", http.StatusUnauthorized)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"user": *user})
		})
		log.Fatal(http.ListenAndServe(*whoami, nil))
	default:
		flag.Usage()
		os.Exit(2)
	}
}

// signedSession makes the app's key, writes its public half to dir and
// returns an ES256 token for user.
func signedSession(dir, user string) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "app.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		return "", err
	}
	return jose.Signed(sig).Claims(jose.Claims{Subject: user, Expiry: jose.NewNumericDate(time.Now().Add(24 * time.Hour))}).CompactSerialize()
}
