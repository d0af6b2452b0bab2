package main

import (
	"log/slog"

	"github.com/devicegate/devicegate/examples/backoffice"
	"github.com/devicegate/devicegate/internal/secrets"
)

// startBackoffice binds the demo back-office app on loopback (plain HTTP:
// the upstream the proxy fronts), with the seeded users' passwords.
func startBackoffice(addr string, users []demoUser, log *slog.Logger) (*server, error) {
	var boUsers []backoffice.User
	for _, u := range users {
		h, err := secrets.HashPassword(u.Password)
		if err != nil {
			return nil, err
		}
		boUsers = append(boUsers, backoffice.User{Name: u.Name, PasswordHash: h})
	}
	return listen("back-office app", addr, backoffice.New(boUsers), nil, log)
}
