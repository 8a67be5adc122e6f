//! An Iceberg schema as Glue columns, the way Iceberg's own Glue catalogs write them (Java
//! `IcebergToGlueConverter`, PyIceberg's `glue.py`): Hive type names, and per column the
//! parameters `iceberg.field.id`, `iceberg.field.optional`, `iceberg.field.current`. Engines
//! read the table from its metadata file; the columns are for Glue's console, Athena's
//! schema browser and crawlers.

use aws_sdk_glue::types::Column;
use iceberg::spec::{PrimitiveType, Schema, Type};
use refold::error::{Error, ErrorKind, Result};

/// Hive's name of an Iceberg type.
pub fn hive_type(t: &Type) -> String {
    match t {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean".into(),
            PrimitiveType::Int => "int".into(),
            PrimitiveType::Long => "bigint".into(),
            PrimitiveType::Float => "float".into(),
            PrimitiveType::Double => "double".into(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".into(),
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp".into(),
            PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => "string".into(),
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => "binary".into(),
        },
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name, hive_type(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(","))
        }
        Type::List(l) => format!("array<{}>", hive_type(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{},{}>",
            hive_type(&m.key_field.field_type),
            hive_type(&m.value_field.field_type)
        ),
    }
}

/// The top-level columns of `schema`.
pub fn glue_columns(schema: &Schema) -> Result<Vec<Column>> {
    schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            Column::builder()
                .name(&f.name)
                .r#type(hive_type(&f.field_type))
                .set_comment(f.doc.clone())
                .parameters("iceberg.field.id", f.id.to_string())
                .parameters("iceberg.field.optional", (!f.required).to_string())
                .parameters("iceberg.field.current", "true")
                .build()
                .map_err(|e| {
                    Error::new(ErrorKind::Internal, format!("Glue column {}", f.name))
                        .with_source(e)
                })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, MapType, NestedField, StructType};
    use std::sync::Arc;

    #[test]
    fn types_and_parameters() {
        let list = Type::List(ListType::new(Arc::new(NestedField::list_element(
            3,
            Type::Primitive(PrimitiveType::Long),
            true,
        ))));
        let map = Type::Map(MapType::new(
            Arc::new(NestedField::map_key_element(
                5,
                Type::Primitive(PrimitiveType::String),
            )),
            Arc::new(NestedField::map_value_element(
                6,
                Type::Primitive(PrimitiveType::Decimal {
                    precision: 10,
                    scale: 2,
                }),
                false,
            )),
        ));
        let inner = Type::Struct(StructType::new(vec![Arc::new(NestedField::required(
            8,
            "at",
            Type::Primitive(PrimitiveType::Timestamptz),
        ))]));
        let schema = Schema::builder()
            .with_fields(vec![
                Arc::new(NestedField::required(
                    1,
                    "order_id",
                    Type::Primitive(PrimitiveType::String),
                )),
                Arc::new(NestedField::optional(2, "lines", list)),
                Arc::new(NestedField::optional(4, "totals", map)),
                Arc::new(NestedField::optional(7, "meta", inner)),
            ])
            .build()
            .unwrap();
        let cols = glue_columns(&schema).unwrap();
        let got: Vec<(&str, &str)> = cols
            .iter()
            .map(|c| (c.name(), c.r#type().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("order_id", "string"),
                ("lines", "array<bigint>"),
                ("totals", "map<string,decimal(10,2)>"),
                ("meta", "struct<at:timestamp>"),
            ]
        );
        let p = cols[0].parameters().unwrap();
        assert_eq!(p["iceberg.field.id"], "1");
        assert_eq!(p["iceberg.field.optional"], "false");
        assert_eq!(
            cols[1].parameters().unwrap()["iceberg.field.optional"],
            "true"
        );
    }
}
