package redirect

import "crypto/rand"

var cryptoRand = rand.Reader
