/* A synthetic libc.so.6 whose version definitions lack what the probe needs (see fakelibc.map). */
int fake_libc_function(void) { return 0; }
