/// A SELECT's column list, kept next to its SQL: the SELECT is built from `sql` and rows are
/// read by the column's name in the list (`Row`), so adding, removing or moving a column
/// cannot shift the others. A name is the column's expression as written (`"j.id"`, `"p.name"`).
package struct Columns: Sendable {
    package let names: [String]
    private let index: [String: Int32]

    package init(_ names: [String]) {
        var index: [String: Int32] = [:]
        for (i, name) in names.enumerated() {
            precondition(index.updateValue(Int32(i), forKey: name) == nil, "column \(name) is listed twice")
        }
        self.names = names
        self.index = index
    }

    /// The list as it goes into a SELECT.
    package var sql: String { names.joined(separator: ", ") }

    /// The row `statement` stands on, read through this list.
    package func row(_ statement: Statement) -> Row { Row(statement: statement, columns: self) }

    /// The position of `name`; a name not in the list is a draven bug and traps.
    func position(_ name: String) -> Int32 {
        guard let i = index[name] else { preconditionFailure("\(name) is not a column of this SELECT (\(sql))") }
        return i
    }
}

/// One row of a SELECT built from a `Columns` list, read by column name.
package struct Row {
    let statement: Statement
    let columns: Columns

    package func int(_ name: String) -> Int64 { statement.int(columns.position(name)) }
    package func optionalInt(_ name: String) -> Int64? { statement.optionalInt(columns.position(name)) }
    package func text(_ name: String) -> String { statement.text(columns.position(name)) }
    package func optionalText(_ name: String) -> String? { statement.optionalText(columns.position(name)) }
}
