// OpenSSL's libcrypto (Debian's libssl-dev), used only by WorkbenchSupport's Digest (SHA-256, MD5).
#include <openssl/evp.h>
#include <openssl/sha.h>
