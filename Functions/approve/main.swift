import DravenCore
import DravenFunctions

CGI.serve(Approve.self)
