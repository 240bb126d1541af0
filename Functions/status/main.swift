import DravenCore
import DravenFunctions

CGI.serve(Status.self)
