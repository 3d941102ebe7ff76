// Command hellogo is a Go program used as a fixture entrypoint: Go programs are not hookable.
package main

import "fmt"

func main() { fmt.Println("hello from Go") }
