//! Is an IP address on the public internet? The classifier behind every address check.
//!
//! It is an allow-by-exception list built from IANA's special-purpose address registries: an
//! IPv4 address is public unless it falls in a special range; an IPv6 address must also lie in
//! global unicast (`2000::/3`), except for the NAT64 well-known prefix. IPv6 forms that carry an
//! IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4, Teredo) are judged
//! by the IPv4 address inside them, because that is where the packets end up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockedRange {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0` ("this network").
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7`.
    Private,
    /// `100.64.0.0/10` (carrier-grade NAT).
    SharedAddressSpace,
    /// `169.254.0.0/16` (includes the cloud metadata address `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Any other special-purpose or unallocated range; the text names it.
    Reserved(&'static str),
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecified => f.write_str("unspecified"),
            Self::ThisNetwork => f.write_str("\"this network\" 0.0.0.0/8"),
            Self::Loopback => f.write_str("loopback"),
            Self::Private => f.write_str("private"),
            Self::SharedAddressSpace => f.write_str("shared address space 100.64.0.0/10"),
            Self::LinkLocal => f.write_str("link-local"),
            Self::Multicast => f.write_str("multicast"),
            Self::Broadcast => f.write_str("broadcast"),
            Self::Documentation => f.write_str("documentation"),
            Self::Benchmarking => f.write_str("benchmarking"),
            Self::Reserved(what) => write!(f, "reserved: {what}"),
        }
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Ipv4Mapped,
    /// `::a.b.c.d` (deprecated).
    Ipv4Compatible,
    /// `64:ff9b::a.b.c.d`.
    Nat64,
    /// `2002:aabb:ccdd::/48`.
    SixToFour,
    /// The server address in a Teredo address (`2001:0:aabb:ccdd::/64`).
    TeredoServer,
    /// The (bit-inverted) client address in the last 32 bits of a Teredo address.
    TeredoClient,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::TeredoServer => "Teredo server",
            Self::TeredoClient => "Teredo client",
        })
    }
}

/// The verdict on a non-public address: the range, and the IPv4 address it was judged by when
/// that address was embedded in an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub range: BlockedRange,
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl Blocked {
    const fn plain(range: BlockedRange) -> Self {
        Self {
            range,
            embedded: None,
        }
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some((form, v4)) => write!(f, "{form} form of {v4}, {}", self.range),
            None => write!(f, "{}", self.range),
        }
    }
}

/// `Ok(())` when `ip` is a public address a fetch may connect to.
pub fn check_ip(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4).map_err(Blocked::plain),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), BlockedRange> {
    use BlockedRange::*;
    let [a, b, c, _] = ip.octets();
    let blocked = match (a, b, c) {
        _ if ip.is_unspecified() => Unspecified,
        (0, _, _) => ThisNetwork,
        (10, _, _) => Private,
        (100, _, _) if b & 0xc0 == 64 => SharedAddressSpace,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (172, _, _) if b & 0xf0 == 16 => Private,
        (192, 0, 0) => Reserved("IETF protocol assignments 192.0.0.0/24"),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 88, 99) => Reserved("6to4 relay anycast 192.88.99.0/24"),
        (192, 168, _) => Private,
        (198, _, _) if b & 0xfe == 18 => Benchmarking,
        _ if a & 0xf0 == 224 => Multicast,
        _ if ip.is_broadcast() => Broadcast,
        _ if a & 0xf0 == 240 => Reserved("future use 240.0.0.0/4"),
        _ => return Ok(()),
    };
    Err(blocked)
}

fn v4_from(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// Judge an IPv6 address by the IPv4 address it embeds.
fn via(form: Embedding, v4: Ipv4Addr) -> Result<(), Blocked> {
    check_v4(v4).map_err(|range| Blocked {
        range,
        embedded: Some((form, v4)),
    })
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    use BlockedRange::*;
    let s = ip.segments();
    let blocked = |range| Err(Blocked::plain(range));

    if ip.is_unspecified() {
        return blocked(Unspecified);
    }
    if ip.is_loopback() {
        return blocked(Loopback);
    }
    // ::ffff:0:0/96: the socket really talks IPv4 to the embedded address.
    if s[..5] == [0; 5] && s[5] == 0xffff {
        return via(Embedding::Ipv4Mapped, v4_from(s[6], s[7]));
    }
    // ::/96 (deprecated IPv4-compatible): never public, but name the embedded address when
    // that is the more telling reason.
    if s[..6] == [0; 6] {
        via(Embedding::Ipv4Compatible, v4_from(s[6], s[7]))?;
        return blocked(Reserved("deprecated IPv4-compatible ::/96"));
    }
    // NAT64 well-known prefix: a translator forwards to the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return via(Embedding::Nat64, v4_from(s[6], s[7]));
    }
    // Local-use NAT64 prefix (RFC 8215): a translator inside someone's own network.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return blocked(Reserved("local-use NAT64 64:ff9b:1::/48"));
    }
    if s[0] & 0xff00 == 0xff00 {
        return blocked(Multicast);
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return blocked(LinkLocal);
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return blocked(Private);
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return blocked(Reserved("deprecated site-local fec0::/10"));
    }
    if s[0] == 0x2002 {
        return via(Embedding::SixToFour, v4_from(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        via(Embedding::TeredoServer, v4_from(s[2], s[3]))?;
        return via(Embedding::TeredoClient, v4_from(!s[6], !s[7]));
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return blocked(Documentation);
    }
    if s[0] == 0x3fff && s[1] < 0x1000 {
        return blocked(Documentation);
    }
    if s[0] == 0x2001 && s[1] == 2 && s[2] == 0 {
        return blocked(Benchmarking);
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        // 2001::/23 is IETF protocol assignments; only these parts are globally reachable.
        let global = matches!(
            (s[1], s[2]),
            (1, 0) if s[3..7] == [0; 4] && (1..=3).contains(&s[7])
        ) || s[1] == 3
            || (s[1] == 4 && s[2] == 0x112)
            || (0x30..=0x3f).contains(&s[1]);
        if !global {
            return blocked(Reserved("IETF protocol assignments 2001::/23"));
        }
        return Ok(());
    }
    if s[0] & 0xe000 != 0x2000 {
        return blocked(Reserved("outside global unicast 2000::/3"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use BlockedRange::*;

    fn verdict(s: &str) -> Result<(), Blocked> {
        check_ip(s.parse().unwrap())
    }

    fn range(s: &str) -> Option<BlockedRange> {
        verdict(s).err().map(|b| b.range)
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2001:3::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok} should be public");
        }
    }

    #[test]
    fn special_ranges_are_blocked() {
        let table = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd12:3456:789a::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
        ];
        for (ip, want) in table {
            assert_eq!(range(ip), Some(want), "{ip}");
        }
        for reserved in [
            "192.0.0.8",
            "192.88.99.1",
            "240.0.0.1",
            "255.255.255.254",
            "fec0::1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1::808:808",
            "100::1",
            "2001:10::1",
            "2001:20::1",
            "5f00::1",
            "4000::1",
            "::8.8.8.8",
        ] {
            assert!(matches!(range(reserved), Some(Reserved(_))), "{reserved}");
        }
    }

    #[test]
    fn ipv6_forms_are_judged_by_the_embedded_ipv4_address() {
        let table: [(&str, Embedding, &str, BlockedRange); 10] = [
            (
                "::ffff:127.0.0.1",
                Embedding::Ipv4Mapped,
                "127.0.0.1",
                Loopback,
            ),
            (
                "::ffff:10.1.2.3",
                Embedding::Ipv4Mapped,
                "10.1.2.3",
                Private,
            ),
            (
                "::ffff:169.254.169.254",
                Embedding::Ipv4Mapped,
                "169.254.169.254",
                LinkLocal,
            ),
            (
                "::127.0.0.1",
                Embedding::Ipv4Compatible,
                "127.0.0.1",
                Loopback,
            ),
            (
                "64:ff9b::127.0.0.1",
                Embedding::Nat64,
                "127.0.0.1",
                Loopback,
            ),
            (
                "64:ff9b::a9fe:a9fe",
                Embedding::Nat64,
                "169.254.169.254",
                LinkLocal,
            ),
            (
                "2002:7f00:1::1",
                Embedding::SixToFour,
                "127.0.0.1",
                Loopback,
            ),
            (
                "2002:c0a8:0101::",
                Embedding::SixToFour,
                "192.168.1.1",
                Private,
            ),
            // Teredo: server 10.0.0.1.
            (
                "2001:0:a00:1::",
                Embedding::TeredoServer,
                "10.0.0.1",
                Private,
            ),
            // Teredo: public server 8.8.8.8, client 127.0.0.1 stored bit-inverted.
            (
                "2001:0:808:808:0:0:80ff:fffe",
                Embedding::TeredoClient,
                "127.0.0.1",
                Loopback,
            ),
        ];
        for (ip, form, v4, want) in table {
            let blocked = verdict(ip).expect_err(ip);
            assert_eq!(blocked.range, want, "{ip}");
            assert_eq!(blocked.embedded, Some((form, v4.parse().unwrap())), "{ip}");
        }
    }

    #[test]
    fn messages_name_the_range_and_the_embedded_address() {
        assert_eq!(
            verdict("169.254.169.254").unwrap_err().to_string(),
            "link-local"
        );
        assert_eq!(
            verdict("::ffff:10.0.0.1").unwrap_err().to_string(),
            "IPv4-mapped form of 10.0.0.1, private"
        );
        assert_eq!(
            verdict("64:ff9b::7f00:1").unwrap_err().to_string(),
            "NAT64 form of 127.0.0.1, loopback"
        );
    }
}
