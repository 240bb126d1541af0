import DravenCore
import DravenFunctions

CGI.serve(Console.self)
