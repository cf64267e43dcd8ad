//! Which network addresses webhooks may be sent to (SSRF protection).
//!
//! Pure: [`is_public`] decides for one address. The sender's resolver applies it to every address
//! a host name resolves to and connects only to addresses that passed, so a name that re-resolves
//! to an internal address between check and connect (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a globally routable unicast address a webhook may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_unspecified()       // 0.0.0.0/8 below covers it; kept for clarity of intent
        || a == 0                           // "this network"
        || ip.is_loopback()                 // 127.0.0.0/8
        || ip.is_private()                  // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()               // 169.254/16, cloud metadata lives here
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 carrier-grade NAT
        || (a == 192 && b == 0 && c == 0)   // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)   // TEST-NET-1
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || ip.is_multicast()                // 224/4
        || a >= 240; // reserved and broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00  // fc00::/7 unique local
        || (first & 0xffc0) == 0xfe80  // fe80::/10 link local
        || (first & 0xffc0) == 0xfec0  // fec0::/10 site local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64, embeds IPv4
        || first == 0x2002 // 6to4, embeds IPv4
        || first == 0x2001 && ip.segments()[1] == 0 // Teredo, tunnels to an embedded IPv4
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated)
    !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let table = [
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2606:4700:4700::1111", true),
            ("127.0.0.1", false),
            ("127.1.2.3", false),
            ("0.0.0.0", false),
            ("10.0.0.1", false),
            ("172.16.5.4", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("100.128.0.1", true),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("::", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:93.184.216.34", true),
            ("64:ff9b::a9fe:a9fe", false),
            ("fd00:ec2::254", false),
            ("0.1.2.3", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("198.18.0.1", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("240.0.0.1", false),
            ("2001:db8::1", false),
            ("2001::5efe:7f00:1", false),
            ("2002:7f00:1::1", false),
            ("::127.0.0.1", false),
            ("fec0::1", false),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_public(ip), expected, "{text}");
        }
    }
}
