//! Typed identifiers.
//!
//! Why this module exists: EC2 and CLUSTERPRO identify everything with strings, and mixing a volume
//! id with a snapshot id, or `/dev/sdx` with `xvdx`, is exactly the kind of slip that destroys the
//! only good copy of the data. Every id that crosses a module boundary is a newtype here, built
//! through a validating constructor (`parse`), so the rest of the code cannot hold a malformed one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an id; the message says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

fn is_hex_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        (rest.len() == 8 || rest.len() == 17) && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Display, `TryFrom<String>` (through the type's `parse`) and `Into<String>` for a string newtype.
macro_rules! string_conversions {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

macro_rules! aws_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as an EC2 id: the prefix followed by 8 or 17 lowercase hex digits.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if is_hex_id(s, $prefix) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError(format!(
                        concat!("{:?} is not ", $what, " id: expected \"", $prefix, "\" followed by 8 or 17 lowercase hex digits"),
                        s
                    )))
                }
            }
            /// The id as EC2 spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        string_conversions!($name);
    };
}

aws_id!(
    /// An EBS volume id, `vol-…`.
    VolumeId, "vol-", "an EBS volume"
);
aws_id!(
    /// An EBS snapshot id, `snap-…`.
    SnapshotId, "snap-", "an EBS snapshot"
);
aws_id!(
    /// An EC2 instance id, `i-…`.
    InstanceId, "i-", "an EC2 instance"
);

impl VolumeId {
    /// The `NVMe` serial number the OS reports for this volume: the id without its hyphen
    /// (`vol-0abc` → `vol0abc`). This is how a disk is found inside a server, never by device name.
    pub fn nvme_serial(&self) -> String {
        self.0.replacen('-', "", 1)
    }
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s`: 1 to the maximum length, ASCII letters, digits, `-`, `_` and `.`,
            /// starting with a letter or digit (safe in tags, file names and client tokens).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let ok = !s.is_empty()
                    && s.len() <= $max
                    && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError(format!(
                        concat!("{:?} is not a valid ", $what, ": use 1 to {} letters, digits, '-', '_' or '.', starting with a letter or digit"),
                        s, $max
                    )))
                }
            }
            /// The name as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        string_conversions!($name);
    };
}

name_id!(
    /// A cluster's name: the key for tags, status and journal.
    ClusterName, "cluster name", 63
);
name_id!(
    /// A CLUSTERPRO server name (e.g. `server1`).
    ServerName, "server name", 63
);
name_id!(
    /// A restore request name; a new value asks for a new restore.
    RequestName, "request name", 100
);
name_id!(
    /// A backup's name: on-demand names from `take`, or `daily-YYYYMMDD` for scheduled ones.
    BackupName, "backup name", 100
);
name_id!(
    /// A CLUSTERPRO group name (e.g. `failover`).
    GroupName, "group name", 31
);
name_id!(
    /// A CLUSTERPRO resource name (e.g. `md`).
    ResourceName, "resource name", 31
);

/// An AWS region such as `ap-northeast-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// Validates the shape `xx-name-N` (lowercase words, ending in a number), e.g. `us-gov-west-1`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(format!("{s:?} is not an AWS region: expected a name like \"ap-northeast-1\"")))
        }
    }
    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(Region);

/// An availability zone such as `ap-northeast-1a`: its region plus one letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone(String);

impl Zone {
    /// Validates a zone name: a region followed by one lowercase letter.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok =
            s.len() > 1 && s.as_bytes()[s.len() - 1].is_ascii_lowercase() && Region::parse(&s[..s.len() - 1]).is_ok();
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(format!(
                "{s:?} is not an availability zone: expected a region followed by a letter, like \"ap-northeast-1a\""
            )))
        }
    }
    /// The region this zone belongs to.
    pub fn region(&self) -> Region {
        Region(self.0[..self.0.len() - 1].to_owned())
    }
    /// The zone name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_conversions!(Zone);

/// An EC2 block device name, normalised so that `/dev/sdx`, `/dev/xvdx`, `sdx` and `xvdx` are one
/// name (EC2 treats them as the same slot). Stored and compared as the letters after the prefix
/// (`x`, or `ba` for `/dev/sdba`), printed as `/dev/sdX`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    /// Accepts `/dev/sdX`, `/dev/xvdX`, `sdX` or `xvdX` with X one or two lowercase letters (`b`–`z`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bare = s.strip_prefix("/dev/").unwrap_or(s);
        let letters = bare.strip_prefix("xvd").or_else(|| bare.strip_prefix("sd"));
        match letters {
            Some(l)
                if (1..=2).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_lowercase())
                    && l.as_bytes()[0] != b'a' =>
            {
                Ok(Self(l.to_owned()))
            }
            _ => Err(IdError(format!(
                "{s:?} is not an EC2 device name for a data volume: expected \"/dev/sdX\" or \"/dev/xvdX\" with X from b to z (e.g. \"/dev/sdx\")"
            ))),
        }
    }
    /// The name as `/dev/sdX`, the form the EC2 API accepts for every instance type.
    pub fn api_name(&self) -> String {
        format!("/dev/sd{}", self.0)
    }
}
impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/dev/sd{}", self.0)
    }
}
impl TryFrom<String> for DeviceName {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<DeviceName> for String {
    fn from(v: DeviceName) -> String {
        v.api_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_sd_and_xvd_are_one_slot() {
        assert_eq!(DeviceName::parse("/dev/sdx").unwrap(), DeviceName::parse("xvdx").unwrap());
        assert_eq!(DeviceName::parse("/dev/xvdb").unwrap().to_string(), "/dev/sdb");
        assert!(DeviceName::parse("/dev/sda1").is_err());
        assert!(DeviceName::parse("/dev/nvme1n1").is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(VolumeId::parse("vol-0123456789abcdef0").is_ok());
        assert!(VolumeId::parse("vol-12345678").is_ok());
        assert!(VolumeId::parse("vol-0123").is_err());
        assert!(VolumeId::parse("snap-0123456789abcdef0").is_err());
        assert_eq!(VolumeId::parse("vol-0abc0000").unwrap().nvme_serial(), "vol0abc0000");
        assert_eq!(Zone::parse("ap-northeast-1c").unwrap().region().as_str(), "ap-northeast-1");
        assert!(Zone::parse("ap-northeast-1").is_err());
        assert!(Region::parse("ap-northeast-1").is_ok());
        assert!(ClusterName::parse("prod db").is_err());
    }
}
