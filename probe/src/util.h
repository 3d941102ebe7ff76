/* Small string helpers used by the decision engine and the hooks; no libc calls, so the same code runs in the
 * probe (where libc's versions would add symbol-version needs) and in the decide-harness. */
#ifndef CRS_UTIL_H
#define CRS_UTIL_H

#include <stddef.h>
#include <stdint.h>

static inline size_t crs_strlen(const char *s)
{
	const char *p = s;
	while (*p)
		p++;
	return (size_t)(p - s);
}

static inline int crs_streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static inline int crs_strneq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i])
			return 0;
		if (!a[i])
			return 1;
	}
	return 1;
}

static inline void crs_memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
}

static inline uint32_t crs_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint16_t crs_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

#endif
