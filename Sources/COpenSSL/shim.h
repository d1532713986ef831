// OpenSSL's libcrypto (Debian's libssl-dev), used only for SHA-256 of images and weight files.
#include <openssl/evp.h>
#include <openssl/sha.h>
