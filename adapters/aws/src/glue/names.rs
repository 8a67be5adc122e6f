//! Iceberg identifiers as Glue names. Glue has one level of databases; Athena reads only
//! database and table names of lowercase letters, digits and `_` (Glue lowercases names
//! itself, so a mixed-case name would come back different from what refold wrote).
//! A namespace of several levels (`domain.orders`) becomes one database joined by `_`
//! (`domain_orders`); the seed's `domain.orders.current_state` is
//! `domain_orders.current_state` in Glue and Athena.

use iceberg::TableIdent;
use refold::error::{Error, ErrorKind, Result};

/// Glue's limit on database and table names, in characters.
pub const MAX_GLUE_NAME_CHARS: usize = 255;

/// A table's Glue database and table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueName {
    pub database: String,
    pub table: String,
}

impl std::fmt::Display for GlueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

fn check(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_GLUE_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Config,
        format!(
            "Glue {what} name `{name}`: Athena reads 1 to {MAX_GLUE_NAME_CHARS} lowercase \
             letters, digits and `_`"
        ),
    ))
}

/// The Glue names of `ident`: namespace levels joined by `_` as the database.
pub fn glue_name(ident: &TableIdent) -> Result<GlueName> {
    let name = GlueName {
        database: ident.namespace().join("_"),
        table: ident.name().to_owned(),
    };
    check("database", &name.database)?;
    check("table", &name.table)?;
    Ok(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use iceberg::NamespaceIdent;

    fn ident(ns: &[&str], name: &str) -> TableIdent {
        let ns = NamespaceIdent::from_vec(ns.iter().map(|s| s.to_string()).collect()).unwrap();
        TableIdent::new(ns, name.to_owned())
    }

    #[test]
    fn namespaces_join_into_one_database() {
        let n = glue_name(&ident(&["domain", "orders"], "current_state")).unwrap();
        assert_eq!(n.database, "domain_orders");
        assert_eq!(n.table, "current_state");
        assert_eq!(n.to_string(), "domain_orders.current_state");
    }

    #[test]
    fn names_athena_cannot_read_are_refused() {
        for (ns, t) in [
            ("Domain", "t"),
            ("d-x", "t"),
            ("d", "Current"),
            ("d", "a.b"),
        ] {
            let e = glue_name(&ident(&[ns], t)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            assert!(e.to_string().contains("lowercase"), "{e}");
        }
        let long = "a".repeat(MAX_GLUE_NAME_CHARS + 1);
        assert!(glue_name(&ident(&["d"], &long)).is_err());
    }
}
