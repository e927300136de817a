/* Escape a C string for use inside a JSON string literal. */
#pragma once
#include <stddef.h>

/* Writes at most outsz bytes including NUL; truncates on a character boundary. Returns out. */
char *json_escape(const char *in, char *out, size_t outsz);
