#include <stdio.h>
int main(void) { puts("hello from a dynamically linked program"); return 0; }
