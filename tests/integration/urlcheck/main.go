// urlcheck answers, for each line "parse<TAB>url" or "request<TAB>url" on stdin, with one line:
// empty when Go's net/url (url.Parse, url.ParseRequestURI) accepts the URL, else its error,
// followed by a tab and the parsed scheme. CDI's webhook uses exactly these two functions.
package main

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"strings"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		mode, raw, _ := strings.Cut(in.Text(), "\t")
		var u *url.URL
		var err error
		if mode == "request" {
			u, err = url.ParseRequestURI(raw)
		} else {
			u, err = url.Parse(raw)
		}
		if err != nil {
			fmt.Fprintf(out, "%s\t\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "\t%s\n", u.Scheme)
		}
	}
}
