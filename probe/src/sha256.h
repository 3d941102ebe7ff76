/* SHA-256 (FIPS 180-4), small and allocation-free: the probe verifies the compiled policy with it. */
#ifndef CRS_SHA256_H
#define CRS_SHA256_H

#include <stddef.h>
#include <stdint.h>

void crs_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
