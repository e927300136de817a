/* Small fd helpers shared by the launcher and its clients. */
#pragma once
#include <stddef.h>

int fd_set_nonblock(int fd);
/* Writes all of buf (retrying on EINTR and short writes); 0 or -errno. */
int fd_write_all(int fd, const char *buf, size_t len);
