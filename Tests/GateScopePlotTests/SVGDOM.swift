import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed XML element: enough DOM to count and inspect what a plot drew.
final class Node {
    let name: String
    let attributes: [String: String]
    weak var parent: Node?
    var children: [Node] = []
    /// Character data directly inside this element (not inside children).
    var text = ""

    init(name: String, attributes: [String: String], parent: Node?) {
        self.name = name; self.attributes = attributes; self.parent = parent
    }

    var classes: [String] { (attributes["class"] ?? "").split(separator: " ").map(String.init) }

    func hasClass(_ c: String) -> Bool { classes.contains(c) }

    /// All descendants (and self) in document order.
    var all: [Node] { [self] + children.flatMap(\.all) }

    func descendants(_ name: String, class cls: String? = nil) -> [Node] {
        all.filter { $0.name == name && (cls == nil || $0.hasClass(cls!)) }
    }

    /// The `<title>` child's text (a tooltip), if any.
    var tooltip: String? { children.first { $0.name == "title" }?.text }

    func ancestor(class cls: String) -> Node? {
        var p = parent
        while let n = p { if n.hasClass(cls) { return n }; p = n.parent }
        return nil
    }
}

struct SVGParseError: Error, CustomStringConvertible {
    let description: String
}

/// Parses `svg` strictly with Foundation's XMLParser; throws when it is not well-formed.
func parseSVG(_ svg: String) throws -> Node {
    let delegate = DOMBuilder()
    let parser = XMLParser(data: Data(svg.utf8))
    parser.delegate = delegate
    parser.shouldProcessNamespaces = false
    guard parser.parse(), let root = delegate.root else {
        throw SVGParseError(description: "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "unknown") at line \(parser.lineNumber)")
    }
    return root
}

private final class DOMBuilder: NSObject, XMLParserDelegate {
    var root: Node?
    var stack: [Node] = []

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        let node = Node(name: elementName, attributes: attributeDict, parent: stack.last)
        stack.last?.children.append(node)
        if root == nil { root = node }
        stack.append(node)
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        stack.removeLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        stack.last?.text += string
    }
}
