/* Link-time stand-in for libdl.so.2: it only gives dlsym the baseline symbol version (GLIBC_2.2.5 on x86_64,
 * GLIBC_2.17 on aarch64) and libdl.so.2 as its DT_NEEDED, so the probe loads on glibc 2.17 through today.
 * Never shipped: at run time the image's own libdl.so.2 / libc.so.6 provide dlsym. */
void *dlsym(void *handle, const char *name)
{
	(void)handle, (void)name;
	return 0;
}
