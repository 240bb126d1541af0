/// A SELECT's column list, kept next to its SQL as an enum: each case is one column (its SQL
/// expression), the SELECT lists them in case order (`sql`), and a row is read by case, whose
/// position is its raw value (`Row`). Adding, removing or moving a column cannot shift the
/// others, and reading one costs no lookup: no dictionary is built and no name hashed per
/// process (functions start per request).
package protocol ColumnList: CaseIterable, RawRepresentable where RawValue == Int32 {
    /// The column's expression as written in the SELECT (`"j.id"`, `"p.name"`).
    var expression: String { get }
}

extension ColumnList {
    /// The list as it goes into a SELECT.
    package static var sql: String {
        var out = ""
        for column in allCases {
            if !out.isEmpty { out += ", " }
            out += column.expression
        }
        return out
    }
}

/// One row of a SELECT built from the column list `C`, read by column.
package struct Row<C: ColumnList> {
    let statement: Statement

    package init(_ statement: Statement) { self.statement = statement }

    package func int(_ column: C) -> Int64 { statement.int(column.rawValue) }
    package func optionalInt(_ column: C) -> Int64? { statement.optionalInt(column.rawValue) }
    package func text(_ column: C) -> String { statement.text(column.rawValue) }
    package func optionalText(_ column: C) -> String? { statement.optionalText(column.rawValue) }
}
