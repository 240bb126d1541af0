import DravenCore
import DravenFunctions

CGI.serve(PlansFunction.self)
