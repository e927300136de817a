#!/bin/sh
# udhcpc event script of the test guest: configures the lease and prints `NET <iface> <ip>` on ttyS0.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	;;
bound | renew)
	# A renewal keeps the address in place so that open connections survive it.
	[ "$1" = renew ] || ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface" 2>/dev/null
	[ -z "$router" ] || ip route replace default via "${router%% *}" dev "$interface"
	[ -z "$dns" ] || for s in $dns; do echo "nameserver $s"; done >/etc/resolv.conf
	if [ -n "$hostname" ]; then
		hostname "$hostname"
		echo "kvguest $hostname" >/www/index.html
	fi
	[ "$1" = renew ] || echo "NET $interface $ip" >/dev/ttyS0
	;;
esac
exit 0
