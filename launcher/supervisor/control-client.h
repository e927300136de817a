/* The control socket's client side: `virt-launcher ctl` and `virt-launcher console`. */
#pragma once

int ctl_client_main(int argc, char **argv);
int console_client_main(int argc, char **argv);
